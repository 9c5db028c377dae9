"""The cutover runbook: backups first, freeze, final rounds, verify gate, switch, roll back."""
