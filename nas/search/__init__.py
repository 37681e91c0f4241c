"""Search: ask/tell strategies, objectives, the durable runner, executors and reports."""
