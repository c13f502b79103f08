"""The director's steering: budgets and the strategic framework, recommendations,
budget scenarios and the indicators board."""
