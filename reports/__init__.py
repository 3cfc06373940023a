"""Reports: comparison tables (CSV, Markdown, LaTeX) and plots from benchmark runs."""
