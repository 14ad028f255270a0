"""autopublish: cross-post a website's new articles to social media, once and only once."""

__version__ = "0.1.0"
