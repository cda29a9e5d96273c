"""The chat demo's page: ``index.html``, ``chat.js`` and ``chat.css``, served by
``python -m wsframe chat`` (read with :mod:`importlib.resources`)."""
