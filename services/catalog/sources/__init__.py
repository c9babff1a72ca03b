"""Where Microsoft updates come from: source documents behind one small interface."""
