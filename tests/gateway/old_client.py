"""The seed service's client code path, as its README shows it and its Odoo module runs it:
`requests.get(url, data=json.dumps(body), headers=...)` then `r.json()`.

Usage: old_client.py BASE_URL CHAT_BODY_FILE MEDIA_BODY_FILE OUT_FILE
Writes {"hello", "chat", "chat_status", "media", "media_status"} as JSON to OUT_FILE.
"""
import json
import sys

import requests

base, chat_file, media_file, out_file = sys.argv[1:5]
headers = {"content-type": "application/json"}

hello = requests.get(base + "/").json()

with open(chat_file) as f:
    body = json.load(f)
r = requests.get(base + "/wecom/finance/chatdata", data=json.dumps(body), headers=headers)
chat_status, chat_datas = r.status_code, r.json()

with open(media_file) as f:
    body = json.load(f)
r = requests.get(base + "/wecom/finance/mediadata", data=json.dumps(body), headers=headers)
media_status, mediadata = r.status_code, r.json()

with open(out_file, "w") as f:
    json.dump({"hello": hello, "chat": chat_datas, "chat_status": chat_status,
               "media": mediadata, "media_status": media_status}, f)
