"""The API's logic, one module per concern; routes stay thin and call these."""
