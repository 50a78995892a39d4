"""The ``anfe`` command line: parse, call the library, turn its errors into one line."""
