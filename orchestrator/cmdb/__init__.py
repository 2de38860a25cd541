"""CMDB: services, dependencies, owners and people, loaded from Backstage descriptors."""
