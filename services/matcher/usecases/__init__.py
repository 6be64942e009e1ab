"""What the matcher does: the live matching loop, fill explanations and backtest runs."""
