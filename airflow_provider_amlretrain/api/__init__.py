"""Transport-free knowledge of the Azure ML classic APIs, shared by the sync and async hooks."""
