"""What every benchmark shares: infrastructure, meters, statistics, baselines, tracing, reports."""
