-- The stack's one PostgreSQL server holds three databases: the app's (POSTGRES_DB), Prefect's
-- and MLflow's (infra/compose.yaml). Run once, when the data volume is first initialised.
CREATE DATABASE prefect OWNER alphaforge;
CREATE DATABASE mlflow OWNER alphaforge;
