"""Where the pipeline benchmark's flame graph goes when its goal is missed (recorded by
bench/common/profile.py `spy`)."""

PROFILE = "bench/profiles/pipeline.svg"
