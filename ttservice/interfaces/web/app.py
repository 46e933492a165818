"""Streamlit entry point: only builds the navigation (`ttservice serve` runs it)."""

import streamlit as st

PAGES = [
    st.Page("views/transcribe.py", title="Transcribe", icon=":material/upload:", default=True),
    st.Page("views/history.py", title="History", icon=":material/history:", url_path="history"),
    st.Page("views/models.py", title="Models", icon=":material/deployed_code:", url_path="models"),
    st.Page("views/statistics.py", title="Statistics", icon=":material/bar_chart:", url_path="statistics"),
]

st.set_page_config(page_title="TTService", page_icon=":material/graphic_eq:", layout="wide")
st.navigation(PAGES).run()
