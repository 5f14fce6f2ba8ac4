"""The library steps (generate, grade, verify, rounds): plan the missing keys, run the
batches, write records and return a summary. They print nothing."""
