"""The long-lived stacks, their plan, the network and load-balancer checks, permissions."""
