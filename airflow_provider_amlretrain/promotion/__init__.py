"""
Promotion of a retrained model, apart from the Airflow operators that orchestrate it.

* :mod:`.evaluation` reads Evaluate Model's CSV, and :mod:`.rules` decides whether its metrics pass the gate;
* :mod:`.record` is the deployment record of one target (what it serves, trained on which data) and its store
  in blob storage with conditional writes; :mod:`.guard` claims, commits and abandons promotions through it;
* :mod:`.smoke_test` scores a few rows on the promoted model; :mod:`.web_service_patch` is the JSON Patch that
  points an ARM web service at a new model; :mod:`.training_result` reads the BES job's outputs.
"""
