"""CloudStack: the KVM agent hook that runs planner at every VM start."""
