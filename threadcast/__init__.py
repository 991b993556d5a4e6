"""threadcast."""
