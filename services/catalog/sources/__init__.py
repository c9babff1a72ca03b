"""Reading source documents from where they are (a path or a URL); the parsers are in domain/."""
