"""ipytui themes: .tcss files and Textual Theme objects."""
