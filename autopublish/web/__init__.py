"""The editors' web page: the publish log, the queue, channel health and editors' actions."""
