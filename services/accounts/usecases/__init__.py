"""What the accounts service does, one room per concern: buying-power holds for orders
(``holds``), the ledger's side of what orders tell it — fills, ends, replaces (``ledger``),
users and their settings (``users``) and the reads: account, positions, P&L (``reads``).
Each change is one unit of work around the Account aggregate."""
