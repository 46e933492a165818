"""Streamlit entry point: only builds the navigation and the language switch (`ttservice serve` runs it)."""

import streamlit as st

from ttservice.interfaces.web import i18n
from ttservice.interfaces.web.i18n import t

i18n.keep_choice()
PAGES = [
    st.Page("views/transcribe.py", title=t("nav.transcribe"), icon=":material/upload:", default=True),
    st.Page("views/history.py", title=t("nav.history"), icon=":material/history:", url_path="history"),
    st.Page("views/models.py", title=t("nav.models"), icon=":material/deployed_code:", url_path="models"),
    st.Page(
        "views/statistics.py", title=t("nav.statistics"), icon=":material/bar_chart:", url_path="statistics"
    ),
]

st.set_page_config(page_title="TTService", page_icon=":material/graphic_eq:", layout="wide")
with st.sidebar:
    i18n.switch()
st.navigation(PAGES).run()
