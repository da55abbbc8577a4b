"""Pure functions for Japanese data: no Django imports, so they are easy to property-test."""
