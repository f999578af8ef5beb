"""The background worker: Django's Tasks framework on the database queue (django-tasks-db), periodic jobs
scheduled under a row lock so two workers never run one twice at once, and recovery of jobs a killed worker held."""
