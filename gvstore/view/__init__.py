"""The sample viewer: a static HTML bundle of a store view (``gvstore view``)."""
