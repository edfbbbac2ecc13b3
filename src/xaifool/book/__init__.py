"""What only the book needs, kept out of the library: chapter setups and their numbers, the
full-results chapters, the "paper vs this book" tables, the Performance page's records and
sentences, the parallel book build and the glued values of a build. Chapters call it; no cached
computation imports it (``tests/test_architecture.py`` checks)."""
