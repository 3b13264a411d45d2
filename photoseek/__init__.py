"""photoseek: a private, self-hosted image search engine with encoders trained from scratch."""

__version__ = "0.1.0"
