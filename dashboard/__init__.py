"""The Streamlit app shell: entry point, shared sidebar, caching and chart builders."""
