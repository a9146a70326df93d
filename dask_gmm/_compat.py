"""The private scikit-learn names dask_gmm uses, in one place (scikit-learn >= 1.7).

scikit-learn has no public way to read a DataFrame's feature names, or to check them against a
fitted estimator's without validating the array too; these two are what its own estimators call.
Its estimators refuse a bad hyper-parameter with ``InvalidParameterError``, both a ValueError and a
TypeError; dask_gmm's estimators raise the same class, so code written against scikit-learn's
catches theirs. If a release moves these, only this module changes.
"""

from sklearn.utils._param_validation import InvalidParameterError  # noqa: F401
from sklearn.utils.validation import _check_feature_names as check_feature_names  # noqa: F401
from sklearn.utils.validation import _get_feature_names as get_feature_names  # noqa: F401
