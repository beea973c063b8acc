"""Media rules of each destination and the checks run on a file before it is uploaded."""
