"""Server layer: settings, assembly of the app, and its lifecycle."""
