"""Tests of the CMDB layer: loading Backstage descriptors, impact, and `stormdrill cmdb`."""
