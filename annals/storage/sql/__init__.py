"""The SQL driver: SQLAlchemy 2 Core on SQLite, PostgreSQL and MySQL/MariaDB."""
