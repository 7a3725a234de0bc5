"""The web app: server-rendered pages and their static assets, served by the gateway itself.

Sign in, models, chatroom, keys, credits, activity, rankings, settings and admin (docs/web.md).
Every asset ships in this package: nothing is fetched from a CDN.
"""
