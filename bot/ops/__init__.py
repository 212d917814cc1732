"""Running the product: set-up and the supervisor of the stack, the cluster, health checks, and the
dependency audit."""
