from gateway.routes import bindings, by_path

# The REST contract of the foundation issue (DESIGN §8); every row must be bound.
REQUIRED = {
    ("GET", "/api/mbt/account"),
    ("GET", "/api/mbt/positions"),
    ("GET", "/api/mbt/positions/{symbol}"),
    ("GET", "/api/mbt/pnl"),
    ("POST", "/api/mbt/orders"),
    ("GET", "/api/mbt/orders"),
    ("GET", "/api/mbt/orders/{order_id}"),
    ("DELETE", "/api/mbt/orders/{order_id}"),
    ("PATCH", "/api/mbt/orders/{order_id}"),
    ("GET", "/api/mbt/activities"),
    ("GET", "/api/mbt/activities/{activity_id}"),
}


def test_every_rest_endpoint_of_the_contract_is_annotated():
    bound = {(b.http_method, b.template) for b in bindings()}
    assert bound >= REQUIRED


def test_bindings_name_their_upstream_service_and_rpc():
    by_template = {(b.http_method, b.template): b for b in bindings()}
    submit = by_template[("POST", "/api/mbt/orders")]
    assert (submit.upstream, submit.grpc_path, submit.body, submit.response_body) == (
        "orders",
        "/mbt.orders.v1.OrdersService/SubmitOrder",
        "*",
        "order",
    )
    assert by_template[("GET", "/api/mbt/account")].upstream == "accounts"


def test_literal_paths_are_tried_before_templated_ones():
    paths = list(by_path(bindings()))
    assert paths.index("/api/mbt/orders") < paths.index("/api/mbt/orders/{order_id}")
