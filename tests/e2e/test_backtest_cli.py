"""`mbt backtest`: a run from the command line writes the result files and prints the
summary; a refused script says why and exits non-zero."""

from __future__ import annotations

import json

from services.cli import main


def test_mbt_backtest_writes_the_results_and_prints_a_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MBT_DATA_DIR", str(tmp_path))
    out = tmp_path / "grid"
    assert (
        main(
            [
                "backtest",
                "grid",
                "--from",
                "2012-06-21",
                "--to",
                "2012-06-21",
                "--param",
                "slots=4",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "total return" in printed and "max drawdown" in printed and str(out / "report.html") in printed
    assert {p.name for p in out.iterdir()} >= {
        "report.html",
        "fills.csv",
        "fills.parquet",
        "orders.csv",
        "ledger.parquet",
        "equity.csv",
        "statistics.csv",
    }
    assert (out / "fills.csv").read_text().splitlines()[0].startswith("fill_id,order_id,symbol,side,qty,price")


def test_mbt_backtest_refuses_a_bad_script_with_its_reason(tmp_path, capsys):
    script = tmp_path / "script.json"
    script.write_text(
        json.dumps(
            {
                "steps": [
                    {
                        "at": "2012-06-21T14:00:00Z",
                        "submit": {
                            "symbol": "AMZN",
                            "side": "buy",
                            "qty": "10",
                            "order_type": "limit",
                            "time_in_force": "day",
                        },
                    }
                ]
            }
        )
    )
    assert (
        main(
            [
                "backtest",
                str(script),
                "--from",
                "2012-06-21",
                "--to",
                "2012-06-21",
                "--no-progress",
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    assert "invalid_argument: script.steps[0].submit: a limit order needs limit_price" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
