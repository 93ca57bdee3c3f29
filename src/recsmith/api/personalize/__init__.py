"""Amazon Personalize's wire protocols on recsmith's port: the runtime (``GetRecommendations``,
``GetPersonalizedRanking``), events (``PutEvents``, ``PutUsers``, ``PutItems``) and the control plane (json 1.1,
``X-Amz-Target: AmazonPersonalize.<Op>``), authenticated by AWS Signature Version 4 with recsmith's API keys, as
botocore's service models describe them, so that an application's boto3 clients need only ``endpoint_url``.

The modules: :mod:`.errors` (AWS's error shape), :mod:`.arns` (resources named the Personalize way),
:mod:`.sigv4` (signature verification), :mod:`.auth` (keys and roles), :mod:`.protocol` (reading a call and
answering it), :mod:`.runtime` and :mod:`.events` (the rest-json routes), :mod:`.control` (the control plane's
dispatcher) and its operations in :mod:`.control_data` and :mod:`.control_models`.
"""
