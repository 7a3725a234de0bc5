"""Prices, costs and (later) the credit ledger; all money is integer pUSD."""
