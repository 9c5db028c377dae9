"""The target Galera side: the runtime and back-office schemas furet writes into."""
