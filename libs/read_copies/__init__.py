"""Read copies several services keep of another service's data, defined once and mounted."""
