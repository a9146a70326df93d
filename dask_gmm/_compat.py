"""The private scikit-learn functions dask_gmm uses, in one place (scikit-learn >= 1.6).

scikit-learn has no public way to read a DataFrame's feature names, or to check them against a
fitted estimator's without validating the array too; these two are what its own estimators call.
If a release moves them, only this module changes.
"""

from sklearn.utils.validation import _check_feature_names as check_feature_names  # noqa: F401
from sklearn.utils.validation import _get_feature_names as get_feature_names  # noqa: F401
