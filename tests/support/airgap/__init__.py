"""An outbound-connection guard for tests of a disconnected (air-gapped) network: put this
folder first on PYTHONPATH and its sitecustomize.py arms the guard in every Python process."""
