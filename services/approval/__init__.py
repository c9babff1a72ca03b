"""approval: the computer-group tree, approvals, declines and auto-approval rules."""
