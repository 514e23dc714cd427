"""How an element is shown: page model and renderers (filled by the pages issue)."""
