"""/healthz over the real mesh: every upstream's serving status and the environment it says
it runs in (from its gRPC health check), and a mesh that mixes environments is degraded."""

from services.common.config import SERVICES
from tests.support.mesh import build_service, mesh_settings, start_mesh


async def test_health_reports_each_upstreams_environment(databases, tmp_path):
    mesh = await start_mesh(mesh_settings(databases, tmp_path))
    try:
        response = await mesh.http.get("/healthz")
    finally:
        await mesh.stop()
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {
        "status": "serving",
        "environment": "development",
        "upstreams": {name: {"status": "serving", "environment": "development"} for name in SERVICES},
    }


async def test_a_mesh_that_mixes_environments_is_degraded(databases, tmp_path):
    def production_orders(settings):
        runtime = build_service("orders", settings)
        runtime.environment = "production"  # as if started with MBT_ENV=production
        return runtime

    mesh = await start_mesh(mesh_settings(databases, tmp_path), builders={"orders": production_orders})
    try:
        response = await mesh.http.get("/healthz")
    finally:
        await mesh.stop()
    assert response.status_code == 503
    data = response.json()["data"]
    assert (data["status"], data["upstreams"]["orders"]) == (
        "degraded",
        {"status": "serving", "environment": "production"},
    )
    assert {name: upstream["environment"] for name, upstream in data["upstreams"].items() if name != "orders"} == {
        name: "development" for name in SERVICES if name != "orders"
    }
