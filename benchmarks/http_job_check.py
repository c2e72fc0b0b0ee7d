"""
The response check a user of the Http provider writes to wait for a BES job: has the job ended?

``HttpEventTrigger`` imports it by path (``response_check_path="http_job_check.job_has_ended"``) and
calls it with each answer; the module must be importable in the triggerer (here: ``benchmarks/`` on the path).
"""

from __future__ import annotations

import json
from typing import Any

ENDED = {"Finished", "Failed", "Cancelled", 2, 3, 4}


async def job_has_ended(response: Any) -> bool:
    """
    Whether a BES status answer says the job has ended.

    :param response: The ``requests.Response`` the trigger built from the answer.
    """
    return json.loads(response.content).get("StatusCode") in ENDED
