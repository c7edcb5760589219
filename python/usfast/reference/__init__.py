"""The ``reference`` backend: float64 NumPy written straight from the formulas and papers.
Readable rather than fast; the oracle every compiled backend is tested against."""
