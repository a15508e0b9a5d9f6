"""What a person sees of a sweep in the MLflow UI: the parent run's description, links to the
right views, and the best trial's model in the Model Registry."""
