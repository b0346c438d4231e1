"""The deployed-style baseline for Python: the benchmark's handler as a Flask app, the way small
handlers are commonly deployed, served by gunicorn (bench/run starts it with threaded workers,
which keep connections alive as the load client expects). Parses the JSON body, takes its
"event" member as wispd does, calls the handler, answers with the result.
"""
from flask import Flask, jsonify, request

app = Flask(__name__)


def handler(event):
    return {"ok": True, "n": event.get("n")}


@app.post("/invoke")
def invoke():
    doc = request.get_json(force=True, silent=True) or {}
    event = doc["event"] if isinstance(doc, dict) and "event" in doc else doc
    return jsonify(handler(event))
