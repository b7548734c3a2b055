"""crmkit: a low-code CRM platform. Describe a CRM in YAML; get a database, a REST API and hooks.

The application factory is :func:`crmkit.app.create_app`; the command line is :mod:`crmkit.cli`.
"""
