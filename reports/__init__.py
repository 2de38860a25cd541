"""Reports: blameless post-mortems, the coverage matrix and JUnit XML, built from run records."""
