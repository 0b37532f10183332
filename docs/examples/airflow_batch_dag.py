"""Example Airflow DAG (not a dependency of Atlas Stream): score a batch contract into the lake
every night and fail the task when more than 5 % of a dataset's rows are rejected.

``batch --max-rejected 0.05`` exits 3 (and prints the summary) when the rejected share is above
the limit, 2 on bad input (one ``error:`` line), 0 otherwise; Airflow fails the task on any
non-zero exit. Copy this file into the DAGs folder of an Airflow whose workers have the
Atlas Stream checkout at ATLAS_HOME (and its .venv, Java 17 for --engine spark).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow import DAG

try:  # Airflow 3
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:  # Airflow 2
    from airflow.operators.bash import BashOperator

ATLAS_HOME = os.environ.get("ATLAS_HOME", "/opt/atlas-stream")

with DAG(
    dag_id="atlas_batch_ecommerce_transactions_fs",
    schedule="0 2 * * *",
    start_date=datetime(2025, 1, 1),
    catchup=False,
    default_args={"retries": 1, "retry_delay": timedelta(minutes=10)},
    tags=["atlas-stream", "batch"],
) as dag:
    BashOperator(
        task_id="score_into_lake",
        cwd=ATLAS_HOME,
        bash_command=(".venv/bin/python -m atlas_stream batch --ocs ecommerce_transactions_fs "
                      "--engine {{ params.engine }} --max-rejected {{ params.max_rejected }}"),
        params={"engine": "arrow", "max_rejected": 0.05},
        # ATLAS_SPARK_MASTER=spark://master:7077 (with params.engine=spark) runs it on a cluster
        env={"ATLAS_LAKE_URI": "s3://my-lake/atlas", "ATLAS_SPARK_MASTER": "local[*]"},
        append_env=True,
    )
