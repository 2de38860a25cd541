"""AWS provider: zone isolation, instance stops, ASG zone removal, egress cut-off, IAM."""
